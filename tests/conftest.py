"""Shared fixtures: a trained BPE tokenizer, a tiny model directory with its tokenizer, one intra-op thread;
the `gpu` marker's skip. The helpers the tests import (tiny models, batches, trainers, data files,
processes) are plain code in tests/support/; tests/integration/conftest.py holds the end-to-end fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)
pytest.register_assert_rewrite("support")  # their asserts explain themselves as a test's do

from support.data import sst2_lines  # noqa: E402
from support.models import build_model_dir, build_tokenizer  # noqa: E402
from support.paths import SAMPLE  # noqa: E402
from support.threads import intra_op_threads  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A 400-token byte-level BPE tokenizer (RoBERTa-style specials) trained on the embedded sample."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tokenizer")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(SAMPLE)], vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
              show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                            model_max_length=512).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny masked-LM BERT and its tokenizer, in one directory (as the pretrain stage exports them)."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    tok = build_tokenizer(directory, sst2_lines())
    return build_model_dir(directory, len(tok))


@pytest.fixture
def one_thread():
    """These models are tiny: one intra-op thread is ~30x faster than two on a busy 2-core machine (a module
    asks for it with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    with intra_op_threads(1):
        yield


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need a CUDA device and are skipped without one, so the README's one test command runs
    everything else on a CPU; `-m "not slow"` leaves out the end-to-end runs for a quick check."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):  # not `keywords`: the folder tests/gpu/ would match
            item.add_marker(skip)
