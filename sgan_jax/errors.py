"""The one error type the library raises for bad input or bad state."""


class SganError(ValueError):
  """Raised for invalid user input (data, config, checkpoints) with a fix-it message.

  Subclasses ValueError so generic callers can still catch it, but every message
  the project raises says what is wrong *and* how to fix it.
  """
