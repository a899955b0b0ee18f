"""speechllm: teach a large language model to transcribe speech (KappaTune, arXiv:2506.16289)."""

__version__ = "0.1.0"
