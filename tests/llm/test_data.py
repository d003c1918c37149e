"""TRL preference-format data, collation and on-policy generation (nlhf_theory.llm._data)."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlhf_theory import InvalidInputError  # noqa: E402
from nlhf_theory.llm import (  # noqa: E402
    PreferenceCollator,
    check_sampling_temperature,
    generate_completions,
    preference_rows,
    sequence_logprobs,
    tokenize_preference_dataset,
)
from nlhf_theory.llm._data import completion_lengths, split_pair  # noqa: E402

WORDS = ["<pad>", "<eos>", "a", "b", "c", "the", "cat", "sat", "on", "mat"]


def word_tokenizer(pad=True, pad_is_eos=False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    kwargs = {"eos_token": "<eos>"}
    if pad:
        kwargs["pad_token"] = "<eos>" if pad_is_eos else "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def tiny_llama(seed=0, vocab=len(WORDS)):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=16, pad_token_id=0, eos_token_id=1,
                         bos_token_id=None)
    model = LlamaForCausalLM(config).double()
    with torch.no_grad():  # larger logits than the default init, so temperatures matter
        model.lm_head.weight.mul_(60.0)
    return model.eval()


ROWS = [{"prompt": "the cat", "chosen": "sat on", "rejected": "a", "extra": 1},
        {"prompt": "a", "chosen": "b c", "rejected": "the mat sat"}]


def test_rows_accept_lists_dicts_and_dataset_like_objects():
    assert preference_rows(ROWS)[0] == {"prompt": "the cat", "chosen": "sat on",
                                        "rejected": "a"}
    columns = {k: [r[k] for r in ROWS] for k in ("prompt", "chosen", "rejected")}
    assert preference_rows(columns) == preference_rows(ROWS)

    class DatasetLike(list):
        column_names = ["prompt", "chosen"]

    with pytest.raises(InvalidInputError, match="missing column 'rejected'"):
        preference_rows(DatasetLike([{"prompt": "a", "chosen": "b"}]))
    assert preference_rows(DatasetLike([{"prompt": "a", "chosen": "b"}]),
                           columns=("prompt",)) == [{"prompt": "a"}]


@pytest.mark.parametrize("rows, match", [
    ([{"prompt": "a", "chosen": "", "rejected": "b"}], "empty completion"),
    ([{"prompt": "a", "chosen": "b"}], "no column 'rejected'"),
    ([{"prompt": [{"role": "user", "content": "a"}], "chosen": "b", "rejected": "c"}],
     "must be a string"),
    ([], "no rows"),
    ({"prompt": ["a", "b"], "chosen": ["c"], "rejected": ["a"]}, "different lengths"),
])
def test_rows_reject_bad_input(rows, match):
    with pytest.raises(InvalidInputError, match=match):
        preference_rows(rows)


def test_tokenize_appends_eos_truncates_completions_and_refuses_long_prompts():
    tok = word_tokenizer()
    out = tokenize_preference_dataset(ROWS, tok, max_length=5)
    assert out[0] == {"prompt_input_ids": [5, 6], "chosen_input_ids": [7, 8, 1],
                      "rejected_input_ids": [2, 1]}
    assert out[1]["rejected_input_ids"] == [5, 9, 7, 1]  # 1 + 4 tokens = max_length
    out = tokenize_preference_dataset(ROWS, tok, max_length=4)
    assert out[1]["rejected_input_ids"] == [5, 9, 7]  # cut on the right to fit
    with pytest.raises(InvalidInputError, match="prompt has 2 tokens.*max_length = 2"):
        tokenize_preference_dataset(ROWS, tok, max_length=2)
    with pytest.raises(InvalidInputError, match="tokenizer: has no pad token"):
        tokenize_preference_dataset(ROWS, word_tokenizer(pad=False), max_length=8)
    prompts = tokenize_preference_dataset(ROWS, tok, max_length=8, prompts_only=True)
    assert prompts == [{"prompt_input_ids": [5, 6]}, {"prompt_input_ids": [2]}]


def test_collator_pads_left_and_right_and_keeps_lengths_when_pad_is_eos():
    tok = word_tokenizer(pad_is_eos=True)
    rows = tokenize_preference_dataset(ROWS, tok, max_length=8)
    rows[0]["ref_chosen_logps"] = -1.5
    rows[1]["ref_chosen_logps"] = -2.0
    batch = PreferenceCollator(tok.pad_token_id)(rows)
    assert batch["prompt_ids"].tolist() == [[5, 6], [1, 2]]
    assert batch["prompt_mask"].tolist() == [[1, 1], [0, 1]]
    assert batch["chosen_ids"].tolist() == [[7, 8, 1], [3, 4, 1]]
    # every completion ends with eos == pad, yet its length counts it
    assert batch["chosen_lengths"].tolist() == [3, 3]
    assert batch["rejected_lengths"].tolist() == [2, 4]
    assert batch["ref_chosen_logps"].tolist() == [-1.5, -2.0]
    chosen, rejected = split_pair(batch)
    assert torch.equal(chosen.prompt_ids, rejected.prompt_ids)
    with pytest.raises(InvalidInputError, match="empty completion"):
        PreferenceCollator(0)([{"prompt_input_ids": [2], "chosen_input_ids": [],
                                "rejected_input_ids": [3]}])


def test_completion_lengths_stop_at_the_first_eos():
    ids = torch.tensor([[3, 1, 1, 1], [3, 4, 5, 6], [1, 0, 0, 0]])
    assert completion_lengths(ids, 1).tolist() == [2, 4, 1]
    assert completion_lengths(ids, None).tolist() == [4, 4, 4]
    assert completion_lengths(ids, [6, 1]).tolist() == [2, 4, 1]


def enumerated(model, prompt, tokens, length, temperature):
    """Probabilities of all sequences of ``length`` over ``tokens`` after ``prompt``."""
    seqs = torch.tensor(list(itertools.product(tokens, repeat=length)))
    n = len(seqs)
    logp = sequence_logprobs(model, prompt.expand(n, -1), torch.ones_like(prompt).expand(n, -1),
                             seqs, torch.full((n,), length), temperature=temperature,
                             allowed_tokens=torch.tensor(tokens))
    return seqs, logp.exp().detach().numpy()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_generate_samples_the_tempered_policy_restricted_to_allowed_tokens(temperature):
    model = tiny_llama()
    prompt = torch.tensor([[5, 6]])
    tokens = [2, 3, 4]
    seqs, probs = enumerated(model, prompt, tokens, 2, temperature)
    assert abs(probs.sum() - 1) < 1e-12
    n = 6000
    out = generate_completions(model, prompt, torch.ones_like(prompt), max_new_tokens=2,
                               temperature=temperature, num_samples=n, allowed_tokens=tokens,
                               fixed_length=True, seed=1, pad_token_id=0)
    assert out.completion_ids.shape == (n, 2) and out.completion_lengths.eq(2).all()
    assert out.prompt_ids.shape == (n, 2)
    index = {tuple(s.tolist()): i for i, s in enumerate(seqs)}
    counts = np.bincount([index[tuple(c.tolist())] for c in out.completion_ids],
                         minlength=len(seqs))
    freq = counts / n
    se = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(freq - probs) <= 5 * se + 1e-3), (freq, probs)
    # and the other temperature's policy is rejected by the same test (the test has power)
    _, other = enumerated(model, prompt, tokens, 2, 1.5 - temperature)
    assert np.any(np.abs(freq - other) > 5 * se + 1e-3)


def test_generate_stops_at_eos_and_pads_after_it():
    model = tiny_llama(seed=3)
    prompt = torch.tensor([[0, 5], [6, 7]])
    mask = torch.tensor([[0, 1], [1, 1]])
    out = generate_completions(model, prompt, mask, max_new_tokens=4, num_samples=50,
                               eos_token_id=1, pad_token_id=0, seed=0)
    for ids, length in zip(out.completion_ids, out.completion_lengths):
        ids = ids.tolist()
        if 1 in ids:
            assert length == ids.index(1) + 1
            assert all(t == 0 for t in ids[int(length):])
        else:
            assert length == out.completion_ids.shape[1]
    again = generate_completions(model, prompt, mask, max_new_tokens=4, num_samples=50,
                                 eos_token_id=1, pad_token_id=0, seed=0)
    assert torch.equal(again.completion_ids, out.completion_ids)  # seeded


def test_generate_refuses_prompts_longer_than_the_context():
    model = tiny_llama()
    prompt = torch.ones((1, 14), dtype=torch.long)
    with pytest.raises(InvalidInputError, match="exceeds the model's context"):
        generate_completions(model, prompt, prompt, max_new_tokens=3)


def test_temperature_must_match_for_on_policy_recipes():
    with pytest.raises(InvalidInputError, match="^temperature: .*0.7.*'online_ipo'"):
        check_sampling_temperature("online_ipo", "policy", 0.7, 1.0)
    check_sampling_temperature("online_ipo", "policy", 0.7, 0.7)
    check_sampling_temperature("online_ipo", "policy", 0.7, 1.0, allow_mismatch=True)
    check_sampling_temperature("dpo", "dataset", 0.7, 1.0)  # offline: not sampled
    for pairs in ("policy_vs_ref", "policy_vs_mixture", "mixture"):
        with pytest.raises(InvalidInputError, match="temperature"):
            check_sampling_temperature("nash_md", pairs, 0.9, 1.0)
    with pytest.raises(InvalidInputError, match="training_temperature"):
        check_sampling_temperature("dpo", "dataset", 1.0, 0.0)
