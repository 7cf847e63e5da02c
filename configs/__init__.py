"""The presets that ship with alum (`alum.configs`): YAML for each stage, JSON for DeepSpeed. Address them by
name (`--config tiny`) or by path; `alum.presets` resolves both."""
