"""Sequence log-probabilities: normalization, padding invariance, masks from lengths, errors."""

import itertools
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny models: threads only contend on a busy 2-core machine
transformers = pytest.importorskip("transformers")

from nlhf_theory import InvalidInputError  # noqa: E402
from nlhf_theory.llm import build_inputs, sequence_logprobs, token_logprobs  # noqa: E402

VOCAB = 7


def tiny_model(architecture, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    if architecture == "llama":
        config = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=12,
            pad_token_id=0, bos_token_id=1, eos_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=4,
                                         n_positions=12, pad_token_id=0, bos_token_id=1,
                                         eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
    return model.to(dtype).eval()


def manual_logprob(model, prompt, completion, temperature=1.0):
    """Independent reference: one unpadded row, token by token, no masks at all."""
    ids = torch.tensor([list(prompt) + list(completion)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].to(torch.float64) / temperature
    logp = torch.log_softmax(logits, -1)
    P = len(prompt)
    return sum(float(logp[P - 1 + t, tok]) for t, tok in enumerate(completion))


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("allowed", [None, (2, 4, 5)])
def test_enumerated_sequences_sum_to_one(architecture, allowed):
    model = tiny_model(architecture)
    alphabet = range(VOCAB) if allowed is None else allowed
    length = 3
    seqs = torch.tensor(list(itertools.product(alphabet, repeat=length)))
    n = seqs.shape[0]
    for prompt in ([1], [1, 3, 6]):
        prompt_ids = torch.tensor([prompt] * n)
        with torch.no_grad():
            logp = sequence_logprobs(model, prompt_ids, torch.ones_like(prompt_ids), seqs,
                                     torch.full((n,), length), allowed_tokens=allowed)
        assert logp.dtype == torch.float64
        assert abs(float(torch.logsumexp(logp, 0))) < 1e-10
        if allowed is None:  # and it is the chain rule of the plain model
            assert abs(float(logp[5]) - manual_logprob(model, prompt, seqs[5].tolist())) < 1e-10


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_padding_side_batch_and_prompt_length_change_nothing(architecture):
    model = tiny_model(architecture)
    rows = [([1, 3], [4, 5, 2]), ([1, 6, 6, 3], [2]), ([1], [5, 5]), ([1, 2, 3], [3, 4, 6])]
    expected = [manual_logprob(model, p, c) for p, c in rows]
    width = 6  # longer than every prompt: extra padding on every row

    def batch(side, order, pad_id=0):
        prompt_ids, prompt_mask, comp, lengths = [], [], [], []
        for i in order:
            p, c = rows[i]
            pad = [pad_id] * (width - len(p))
            prompt_ids.append(pad + p if side == "left" else p + pad)
            prompt_mask.append([0] * len(pad) + [1] * len(p) if side == "left"
                               else [1] * len(p) + [0] * len(pad))
            comp.append(c + [pad_id] * (4 - len(c)))
            lengths.append(len(c))
        return (torch.tensor(prompt_ids), torch.tensor(prompt_mask), torch.tensor(comp),
                torch.tensor(lengths))

    with torch.no_grad():
        for side, order in itertools.product(("left", "right"), ([0, 1, 2, 3], [3, 1, 0, 2])):
            logp = sequence_logprobs(model, *batch(side, order))
            for j, i in enumerate(order):
                assert abs(float(logp[j]) - expected[i]) < 1e-10, (side, order, i)
        for i, (p, c) in enumerate(rows):  # alone, unpadded
            alone = sequence_logprobs(model, torch.tensor([p]), torch.ones(1, len(p)),
                                      torch.tensor([c]), torch.tensor([len(c)]))
            assert abs(float(alone[0]) - expected[i]) < 1e-10
        # a pad id of 5 (a real token id) at padded places changes nothing either
        logp = sequence_logprobs(model, *batch("left", [0, 1, 2, 3], pad_id=5))
        assert max(abs(float(logp[i]) - expected[i]) for i in range(4)) < 1e-10


def test_mask_from_lengths_keeps_a_final_eos_equal_to_pad():
    model = tiny_model("gpt2")  # pad id == eos id == 0
    completion = [3, 0]  # ends with eos, which is also the pad id
    logp = sequence_logprobs(model, torch.tensor([[1]]), torch.tensor([[1]]),
                             torch.tensor([completion + [0, 0]]), torch.tensor([2]))
    assert abs(float(logp[0]) - manual_logprob(model, [1], completion)) < 1e-10
    one = sequence_logprobs(model, torch.tensor([[1]]), torch.tensor([[1]]),
                            torch.tensor([completion + [0, 0]]), torch.tensor([1]))
    assert abs(float(one[0]) - manual_logprob(model, [1], [3])) < 1e-10
    assert abs(float(logp[0] - one[0])) > 1e-3  # the eos token counts


def test_normalize_temperature_and_dtype():
    model = tiny_model("llama")
    prompt, comp = torch.tensor([[1, 4]]), torch.tensor([[2, 3, 6]])
    args = (model, prompt, torch.ones_like(prompt), comp, torch.tensor([3]))
    total = sequence_logprobs(*args)
    mean = sequence_logprobs(*args, normalize=True)
    assert abs(float(mean * 3 - total)) < 1e-12
    hot = sequence_logprobs(*args, temperature=0.7)
    assert abs(float(hot[0]) - manual_logprob(model, [1, 4], [2, 3, 6], 0.7)) < 1e-10
    values, mask = token_logprobs(*args, full=True)
    assert values.shape == (1, 3, VOCAB) and bool(mask.all())
    assert float((values.exp().sum(-1) - 1).abs().max()) < 1e-12
    low = tiny_model("llama", dtype=torch.bfloat16)
    out = sequence_logprobs(low, prompt, torch.ones_like(prompt), comp, torch.tensor([3]))
    assert out.dtype == torch.float32


def test_gradient_flows_and_build_inputs_positions():
    model = tiny_model("gpt2")
    prompt = torch.tensor([[0, 0, 1, 3]])
    logp = sequence_logprobs(model, prompt, torch.tensor([[0, 0, 1, 1]]), torch.tensor([[2, 5]]),
                             torch.tensor([2]))
    logp.sum().backward()
    assert model.transformer.wte.weight.grad.abs().sum() > 0
    inputs = build_inputs(torch.tensor([[7, 0, 0]]), torch.tensor([[1, 0, 0]]),
                          torch.tensor([[4, 5, 9]]), torch.tensor([2]))
    assert inputs["input_ids"].tolist() == [[0, 0, 7, 4, 5, 0]]
    assert inputs["position_ids"].tolist() == [[0, 0, 0, 1, 2, 2]]
    assert inputs["attention_mask"].tolist() == [[0, 0, 1, 1, 1, 0]]


@pytest.mark.parametrize("change, match", [
    ({"completion_lengths": torch.tensor([0])}, "completion_lengths"),
    ({"completion_ids": torch.zeros(1, 0, dtype=torch.long)}, "completion_ids"),
    ({"completion_lengths": torch.tensor([4])}, "completion_lengths"),
    ({"prompt_mask": torch.zeros(1, 2)}, "prompt_mask"),
    ({"prompt_ids": torch.ones(1, 11, dtype=torch.long),
      "prompt_mask": torch.ones(1, 11)}, "context"),
    ({"allowed_tokens": [2, 3]}, "allowed_tokens"),
    ({"temperature": 0.0}, "temperature"),
    ({"completion_ids": torch.tensor([[2, 3, 6], [2, 3, 6]])}, "batch size"),
])
def test_bad_input_is_rejected(change, match):
    model = tiny_model("gpt2")
    kwargs = {"prompt_ids": torch.tensor([[1, 4]]), "prompt_mask": torch.ones(1, 2),
              "completion_ids": torch.tensor([[2, 3, 6]]),
              "completion_lengths": torch.tensor([3])}
    kwargs.update(change)
    with pytest.raises(InvalidInputError, match=match):
        sequence_logprobs(model, **kwargs)


def test_import_without_the_extra_names_it():
    code = ("import sys; sys.modules['transformers'] = None\n"
            "import nlhf_theory\n"
            "assert 'torch' not in sys.modules\n"
            "try:\n    import nlhf_theory.llm\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'pip install "nlhf_theory[llm]"' in out.stdout
