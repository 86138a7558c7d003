"""What a person reads after a run: Markdown reports (markdown), PNG plots (plots), TensorBoard events
(tensorboard)."""
