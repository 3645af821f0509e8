"""LoRA fine-tuning of a local model on the CPU (peft + a plain PyTorch loop).

The examples are chat messages and the answer the model should give; the loss is computed on the
answer's tokens only (the prompt is masked), with the same chat template the local provider uses
to generate, so a fine-tuned endpoint sees at evaluation exactly the prompts it was trained on.
A `progress` callback sees every step and can cancel the training by returning False.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluations.providers.base import Messages

# SmolLM2 (and other Llama-style models): the attention projections.
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


class TrainingCancelled(Exception):
    pass


class TrainingError(ValueError):
    pass


@dataclass(frozen=True)
class Hyperparameters:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    epochs: int = 2
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 256
    seed: int = 0
    qlora: bool = False  # QLoRA: the base model loaded in 4 bits (bitsandbytes, CUDA only) + LoRA

    LIMITS = {
        "rank": (1, 256),
        "alpha": (1, 1024),
        "epochs": (1, 50),
        "batch_size": (1, 256),
        "max_length": (16, 4096),
        "seed": (0, 2**31 - 1),
    }

    @classmethod
    def from_dict(cls, values: dict | None) -> Hyperparameters:
        """Validated hyperparameters; unknown keys and bad values raise TrainingError naming them."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainingError(
                f"unknown hyperparameter(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        out = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            if name == "qlora":
                if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
                    value = value.strip().lower() in ("true", "1")
                if not isinstance(value, bool):
                    raise TrainingError(f"qlora: {value!r} is not true or false")
                out[name] = value
                continue
            if name == "target_modules":
                modules = value.split(",") if isinstance(value, str) else list(value)
                modules = tuple(m.strip() for m in modules if str(m).strip())
                if not modules:
                    raise TrainingError("target_modules: give at least one module name, e.g. q_proj,v_proj")
                out[name] = modules
                continue
            kind = float if name in ("dropout", "learning_rate") else int
            try:
                number = kind(value)
            except (TypeError, ValueError):
                raise TrainingError(f"{name}: {value!r} is not a number") from None
            low, high = cls.LIMITS.get(name, (None, None))
            if name == "learning_rate" and not (0 < number <= 1):
                raise TrainingError(f"learning_rate: {number} is outside (0, 1]")
            if name == "dropout" and not (0 <= number < 1):
                raise TrainingError(f"dropout: {number} is outside [0, 1)")
            if low is not None and not (low <= number <= high):
                raise TrainingError(f"{name}: {number} is outside {low}..{high}")
            out[name] = number
        return cls(**out)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


QLORA_ON_CPU = (
    "QLoRA (qlora: true) needs a CUDA GPU with bitsandbytes installed: {why}; "
    "this worker trains on the CPU, so leave qlora out (plain LoRA) or run the training queue on a GPU"
)


def qlora_unavailable() -> str | None:
    """Why QLoRA cannot run in this process (a sentence), or None when bitsandbytes and CUDA are here."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        return QLORA_ON_CPU.format(why="bitsandbytes is not installed")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return QLORA_ON_CPU.format(why="torch is not installed")
    if not torch.cuda.is_available():
        return QLORA_ON_CPU.format(why="no CUDA device is available")
    return None


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float
    elapsed: float


@dataclass
class TrainResult:
    steps: int
    seconds: float
    final_loss: float
    examples: int
    tokens: int
    losses: list[float] = field(default_factory=list)


def train_lora(
    *,
    base_model: str,
    examples: Sequence[tuple[Messages, str]],
    out_dir: Path,
    hp: Hyperparameters,
    progress: Callable[[Progress], bool] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on (messages, answer) pairs and save it (adapter weights only) to out_dir."""
    if not examples:
        raise TrainingError("no training examples")
    with _one_at_a_time:  # one training per process: two would share the CPU and both crawl
        return _train(base_model=base_model, examples=examples, out_dir=out_dir, hp=hp, progress=progress)


_one_at_a_time = threading.Lock()


def _load_4bit(base_model: str):  # pragma: no cover - needs a CUDA GPU
    """The base model quantised to 4 bits (NF4, bf16 compute) and prepared for k-bit training."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        base_model, quantization_config=quantization, device_map="auto"
    )
    return prepare_model_for_kbit_training(model), tokenizer


def _train(*, base_model, examples, out_dir, hp, progress) -> TrainResult:
    import torch
    from peft import LoraConfig, get_peft_model

    from evaluations.providers.local import load_pretrained

    started = time.monotonic()
    random.seed(hp.seed)
    torch.manual_seed(hp.seed)
    if hp.qlora:
        reason = qlora_unavailable()
        if reason:
            raise TrainingError(reason)
        model, tokenizer = _load_4bit(base_model)
    else:
        model, tokenizer = load_pretrained(base_model)
    rows = [_encode(tokenizer, messages, answer, hp.max_length) for messages, answer in examples]
    config = LoraConfig(
        r=hp.rank,
        lora_alpha=hp.alpha,
        lora_dropout=hp.dropout,
        target_modules=list(hp.target_modules),
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target module the model does not have
        raise TrainingError(f"LoRA could not be applied: {exc}") from None
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=0.0)
    per_epoch = math.ceil(len(rows) / hp.batch_size)
    total = per_epoch * hp.epochs
    warmup = max(1, total // 20)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        return max(0.1, 1 - (step - warmup) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    order = list(range(len(rows)))
    shuffler = random.Random(hp.seed)
    losses: list[float] = []
    step = 0
    pad = tokenizer.pad_token_id
    for epoch in range(hp.epochs):
        shuffler.shuffle(order)
        for start in range(0, len(order), hp.batch_size):
            batch = [rows[i] for i in order[start : start + hp.batch_size]]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            if hp.qlora:  # pragma: no cover - the 4-bit model sits on the GPU
                device = next(model.parameters()).device
                input_ids, labels, mask = input_ids.to(device), labels.to(device), mask.to(device)
            out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss = float(out.loss.detach())
            losses.append(loss)
            if (
                progress is not None
                and progress(Progress(step, total, epoch + 1, loss, time.monotonic() - started)) is False
            ):
                raise TrainingCancelled(f"cancelled at step {step} of {total}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    return TrainResult(
        steps=step,
        seconds=time.monotonic() - started,
        final_loss=losses[-1],
        examples=len(rows),
        tokens=sum(len(ids) for ids, _ in rows) * hp.epochs,
        losses=losses,
    )


def _encode(tokenizer, messages: Messages, answer: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of prompt + answer + end of turn, and labels that mask the prompt (-100)."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids[: max_length // 2]
    room = max_length - len(answer_ids)
    prompt_ids = prompt_ids[-room:]  # keep the end of a long prompt: it holds the question
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids
