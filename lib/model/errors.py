"""What a user can cause when asking for a model or a run: each error's text is a message
for the user, shown as it is. Kept apart from the code that raises them (torch, the
tokenizer) so that the app can catch them without importing any of it."""


class ModelLoadError(Exception):
    """A model could not be loaded; str(error) is a message for the user."""


class PromptError(ValueError):
    """The prompt cannot be used; str(error) is a message for the user."""


class QueueFull(RuntimeError):
    """The queue is at its limit; str(error) is a message for the user."""


def normalise_prompt(text: str) -> str:
    """The prompt as generated and cached: newlines unified, outer whitespace removed."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()
