"""The weight names of checkpoints written before the point stage (PointsToGrid) and the
U-Net's down path (UNetDownPath) became shared modules: such checkpoints still load, their
keys renamed as they are read. The parameters kept their order, so an optimizer state of
that time still lines up on --resume."""


def rename_prefixes(state_dict, prefix, renames):
    """Rename in place every key prefix + old + rest to prefix + new + rest, for each
    (old, new) of `renames`; the olds end with '.' so that 'down.1.' does not catch 'down.10.'."""
    for key in list(state_dict):
        for old, new in renames:
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
                break


def legacy_key_hook(renames):
    """A load_state_dict pre-hook applying rename_prefixes with `renames` at the prefix of the
    module it is registered on."""

    def hook(module, state_dict, prefix, *_):
        rename_prefixes(state_dict, prefix, renames)

    return hook
