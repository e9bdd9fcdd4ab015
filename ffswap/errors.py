"""Exception types of the face-swap runtime.

Everything derives from :class:`SwapError` so a caller (the CLI, a server loop) can
report any expected failure with one ``except`` and let real bugs surface as-is.
"""


class SwapError(Exception):
    """Base class for expected, user-reportable failures of the swap runtime."""


class NoFaceError(SwapError):
    """No face was found where one is required.

    ``where`` names the input ("source", "target", "target video") so the message can
    tell the user which file to change.
    """

    def __init__(self, where: str, detail: str = "") -> None:
        self.where = where
        message = f"no face found in the {where}"
        super().__init__(f"{message}: {detail}" if detail else message)


class ContractError(SwapError):
    """A model's inputs/outputs do not match what its adapter feeds and reads.

    Raised before any inference session is created, so a wrong or mislabelled model is
    refused cheaply and with a message listing every difference.
    """

    def __init__(self, module: str, differences: list[str]) -> None:
        self.module = module
        self.differences = differences
        details = "\n  ".join(differences)
        super().__init__(f"model for {module!r} does not fit its I/O contract:\n  {details}")


class ProviderUnavailableError(SwapError):
    """An explicitly requested execution provider (cuda, tensorrt) does not load here."""


class MediaError(SwapError):
    """An image or video cannot be read or written."""


class ModelLoadError(SwapError):
    """onnxruntime refused a model that passed verification and the I/O contract
    (an operator it does not know, a broken graph)."""


class OutputError(SwapError):
    """The result could not be written (codec unavailable, encoder failure)."""
