#!/usr/bin/python3
"""Test helper for tests/torch: MASE's JSC models written independently in PyTorch.

Commands (all files are torch.save / json):
  init  --model NAME[,NAME...] --seed S[,S...] --out DIR
        for each model and seed: build the model after torch.manual_seed(S); save
        dict(state_dict()) to DIR/NAME_S.pt and the key order to DIR/NAME_S.json
  run   --model NAME --state STATE.pt --inputs X.pt --out Y.pt
        torch.load the state dict, load_state_dict(strict=True), eval(), forward X, save Y
  cosine --lr LR --epochs E
        print the per-epoch lr of CosineAnnealingLR(T_max=E, eta_min=1e-6) as JSON
Models: jsc-tiny, jsc-toy, jsc-s, jsc-trt (MASE's layer lists), or a path to a JSON
layer list [{"type": "batch_norm1d"|"relu"|"linear"|"dropout", ...}] for custom models.
"""
import argparse
import json
import sys

import torch
from torch import nn


def bn(n):
    return nn.BatchNorm1d(n)


def relu():
    return nn.ReLU(16)  # MASE writes ReLU(16), i.e. inplace=True


MODELS = {
    "jsc-tiny": ("seq_blocks", lambda: [bn(16), relu(), nn.Linear(16, 5), relu()]),
    "jsc-toy": ("seq_blocks", lambda: [bn(16), relu(), nn.Linear(16, 8), bn(8), relu(),
                                       nn.Linear(8, 8), bn(8), relu(), nn.Linear(8, 5), bn(5),
                                       relu()]),
    "jsc-s": ("module_list", lambda: [bn(16), relu(), nn.Linear(16, 64), bn(64), relu(),
                                      nn.Linear(64, 32), relu(), nn.Linear(32, 32), relu(),
                                      nn.Linear(32, 32), relu(), nn.Linear(32, 5), bn(5),
                                      relu()]),
    "jsc-trt": ("seq_blocks", lambda: [bn(16), relu(), nn.Linear(16, 32), bn(32), relu(),
                                       nn.Linear(32, 48), bn(48), relu(), nn.Dropout(0.5),
                                       nn.Linear(48, 16), bn(16), relu(), nn.Linear(16, 5),
                                       bn(5), relu()]),
}


def layers_from_json(path):
    with open(path) as f:
        spec = json.load(f)
    out = []
    for l in spec["layers"]:
        t = l["type"]
        if t == "batch_norm1d":
            out.append(bn(l["num_features"]))
        elif t == "relu":
            out.append(relu())
        elif t == "linear":
            out.append(nn.Linear(l["in"], l["out"]))
        elif t == "dropout":
            out.append(nn.Dropout(l["p"]))
        else:
            raise SystemExit(f"unknown layer type {t}")
    return spec.get("container", "seq_blocks"), out


class JSCModel(nn.Module):
    """MASE's JSC model shape: a Sequential (seq_blocks) or a ModuleList (module_list)."""

    def __init__(self, container, layers):
        super().__init__()
        self.container = container
        if container == "module_list":
            self.module_list = nn.ModuleList(layers)
        else:
            self.seq_blocks = nn.Sequential(*layers)

    def forward(self, x):
        if self.container == "module_list":
            for m in self.module_list:
                x = m(x)
            return x
        return self.seq_blocks(x)


def build(name):
    if name in MODELS:
        container, make = MODELS[name]
        return JSCModel(container, make())
    return JSCModel(*layers_from_json(name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["init", "run", "cosine"])
    ap.add_argument("--model")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--out")
    ap.add_argument("--state")
    ap.add_argument("--inputs")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--epochs", type=int)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.command == "init":
        for name in a.model.split(","):
            for seed in a.seed.split(","):
                torch.manual_seed(int(seed))
                sd = build(name).state_dict()
                torch.save(dict(sd), f"{a.out}/{name}_{seed}.pt")
                with open(f"{a.out}/{name}_{seed}.json", "w") as f:
                    json.dump(list(sd.keys()), f)
    elif a.command == "run":
        m = build(a.model)
        m.load_state_dict(torch.load(a.state), strict=True)
        m.eval()
        with torch.no_grad():
            y = m(torch.load(a.inputs))
        torch.save(y, a.out)
    else:
        p = nn.Parameter(torch.zeros(1))
        opt = torch.optim.Adam([p], lr=a.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs, eta_min=1e-6)
        lrs = []
        for _ in range(a.epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        print(json.dumps(lrs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
