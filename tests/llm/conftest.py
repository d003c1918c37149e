"""The LLM backend's tests: one torch thread (tiny models; on a busy 2-core machine two threads
made building a bridge 40x slower), skipped cleanly without the ``llm`` extra."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
torch.set_num_threads(1)
