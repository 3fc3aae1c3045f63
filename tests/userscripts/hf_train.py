"""A tiny Hugging Face causal LM trained with the user's own loop: a GPT-2 config built locally (random
init), a BPE tokenizer trained locally on the data, both saved with save_pretrained into OUT/model.
Logs train loss and its own eval loss (blocks of --seq-len tokens, HF's labels=input_ids loss) through
the ntjax bridge. The corpus is generated here: no download."""
import argparse
import os
import random

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from ntjax.bridges.torch import TorchMonitor

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--steps", type=int, default=40)
p.add_argument("--seq-len", type=int, default=32)
p.add_argument("--lr", type=float, default=3e-3)
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)

rng = random.Random(0)
words = "the a model learns small data from each step loss falls when rate is right and rises if too high".split()
sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))) + "." for _ in range(900)]
train_text, eval_text = " ".join(sentences[:800]), " ".join(sentences[800:])
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "eval.txt"), "w") as f:
    f.write(eval_text)

tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator([train_text], trainers.BpeTrainer(vocab_size=120, special_tokens=["<eos>"],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")
model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                   eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
monitor = TorchMonitor(model, optimizer, log_dir=os.environ.get("NTJAX_RUN_DIR", args.out), sample_every=20)


def blocks(text):
    ids = tokenizer(text)["input_ids"]
    n = len(ids) // args.seq_len
    return torch.tensor(ids[:n * args.seq_len]).view(n, args.seq_len)


train, held_out = blocks(train_text), blocks(eval_text)
gen = torch.Generator().manual_seed(0)
for step in range(1, args.steps + 1):
    model.train()
    batch = train[torch.randint(0, train.shape[0], (8,), generator=gen)]
    loss = model(input_ids=batch, labels=batch).loss
    optimizer.zero_grad()
    loss.backward()
    monitor.log(step, loss)
    optimizer.step()
    if step % 20 == 0 or step == args.steps:
        model.eval()
        with torch.no_grad():
            ev = model(input_ids=held_out, labels=held_out).loss.item()  # equal blocks: the token mean
        monitor.log_eval(step, {"loss": ev})
        print(f"step {step} eval loss {ev:.5f}", flush=True)
monitor.close()
model.save_pretrained(os.path.join(args.out, "model"))
tokenizer.save_pretrained(os.path.join(args.out, "model"))
