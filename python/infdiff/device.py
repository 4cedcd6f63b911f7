"""The torch device a command runs on, from the name a user gives (`--device`, `train.device`)."""
import torch

DEVICE_NAMES = ("auto", "cpu", "cuda")


def resolve_device(name):
    """torch.device for `name`: "auto" is CUDA when torch sees a GPU, else the CPU. A device
    torch knows ("cuda:1", "meta") passes through, so tests and multi-GPU hosts can pick one."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device: {name!r} is not a device (use one of {', '.join(DEVICE_NAMES)})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch sees no CUDA device here (use cpu or auto)")
    return device
