"""The project's error types: each message says what was expected, what came, and how to fix it."""


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class RLEError(PipelineError):
    """A brush RLE stream that cannot be decoded or a mask that cannot be encoded."""


class ResultError(PipelineError):
    """A Label Studio result (region) that cannot be turned into a label map."""


class LabelStudioError(PipelineError):
    """Label Studio could not be reached, refused the request or answered nonsense."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status, when the server answered


class UnsafeReferenceError(LabelStudioError):
    """A task file reference that points off the server or out of the document root."""


class ServerError(PipelineError):
    """The local Label Studio server could not be installed, started or stopped."""


class ConfigError(PipelineError):
    """A label config that cannot be read, or that disagrees with params.yaml."""


class ParamsError(PipelineError):
    """params.yaml is missing a key or holds a value of the wrong kind."""


class TrainingError(PipelineError):
    """A model, its weights, a checkpoint or a training/evaluation input that cannot be used as asked."""


class ImageError(PipelineError):
    """A task image that cannot be read: not an image, corrupt, too large or a decompression bomb."""


class FetchError(PipelineError):
    """One task file could not be fetched: the status (or failure) and the URL are named."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status, when there was an answer


class EnvironmentProblem(PipelineError):
    """The machine refused a write: disk full, quota, read-only or no permission; the path is named."""


class ArtifactError(PipelineError):
    """A file one stage hands to the next is missing or not what that stage writes."""
