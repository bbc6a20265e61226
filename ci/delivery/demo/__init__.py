"""``deliver demo``: the main job end to end on the embedded default model, with no cloud account."""
