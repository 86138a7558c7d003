"""`--format` names: a file suffix typed as a format gets a did-you-mean to the format that writes it."""

from __future__ import annotations

import pytest

from kdedge.errors import InputError


@pytest.mark.parametrize(("typed", "meant"), [("pte", "executorch"), ("tflite", "litert"), (".pte", "executorch")])
def test_a_file_suffix_as_format_gets_a_did_you_mean(typed, meant):
    from kdedge.runtime.formats import get_format

    with pytest.raises(InputError, match=f"did you mean '{meant}'"):
        get_format(typed)
