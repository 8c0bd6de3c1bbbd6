"""A tokenizer and a causal LM small enough to train on a CPU in seconds, built in memory.

Nothing here reads from or writes to the Hugging Face Hub: the tokenizer is trained on the
texts it is given and the model is initialised from a config.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = [PAD, BOS, EOS, *ROLE_TOKENS]

# Every turn is `<|role|>content<|end|>`; the generation prompt opens an assistant turn, so
# the prompt rendered alone is a prefix of the prompt followed by the answer.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def message_texts(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Every message content of conversational preference rows."""
    for row in rows:
        for column in ("prompt", "chosen", "rejected"):
            for message in row[column]:
                yield message["content"]


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`, with pad/bos/eos, role tokens and a chat template."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
    )


def tiny_config(tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> LlamaConfig:
    """A 2-layer Llama configuration sized to the tokenizer (overrides for other heads, e.g. num_labels)."""
    values: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
    }
    return LlamaConfig(**(values | overrides))


def tiny_llama(tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """A 2-layer Llama sized to the tokenizer, and a frozen copy of it to serve as the DPO reference."""
    config = tiny_config(tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    reference = LlamaForCausalLM(config)
    reference.load_state_dict(model.state_dict())
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return model, reference
