"""The packaged recipes (kdedge/recipes): the CIFAR-10 ResNet recipes warm up at lr 0.1, the alpha study's
AlexNet teacher warms up and sweeps alpha over 0, 0.5 and 1."""

from __future__ import annotations

from kdedge.recipe import load_recipe


def test_cifar_resnet_recipes_warm_up_and_follow_the_hardware() -> None:
    for name in (
        "cifar10_resnet18",
        "cifar10_resnet50",
        "cifar10_self_r18",
        "cifar10_self_r50",
        "cifar10_reverse_r50_from_r18",
    ):
        recipe = load_recipe(name)
        for stage in (recipe.teacher, recipe.student):
            if stage is not None:
                assert stage.warmup_epochs > 0 and stage.lr == 0.1, name


def test_alpha_study_teacher_recipe() -> None:
    recipe = load_recipe("cifar10_alexnet_smallcnn")
    assert recipe.teacher.model == "alexnet_cifar" and recipe.teacher.warmup_epochs > 0
    assert sorted(recipe.sweep.grid["distillation.alpha"]) == [0.0, 0.5, 1.0]
