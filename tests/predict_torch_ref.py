"""Reference forward pass of the load predictor in PyTorch, for test_predict.

usage: predict_torch_ref.py IN OUT
IN (little-endian): 7 int32 F W H L K target nparams, then nparams float32 weights in
libdeepseek's layout, then W*F float32 normalised inputs. OUT: K values then K probabilities,
as float32. Exits with 77 when torch cannot be imported (the test then skips)."""
import struct
import sys

try:
    import torch
except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
    print("torch unavailable: %s" % e)
    sys.exit(77)
import numpy as np


def main():
    raw = open(sys.argv[1], "rb").read()
    F, W, H, L, K, target, n = struct.unpack_from("<7i", raw, 0)
    w = np.frombuffer(raw, dtype="<f4", count=n, offset=28)
    x = np.frombuffer(raw, dtype="<f4", count=W * F, offset=28 + 4 * n).reshape(W, F)
    off = 0

    def take(*shape):
        nonlocal off
        size = int(np.prod(shape))
        a = torch.tensor(w[off:off + size].reshape(shape).copy())
        off += size
        return a

    G = 4 * H
    lstm = torch.nn.LSTM(F, H, num_layers=L, batch_first=True)
    with torch.no_grad():
        for layer in range(L):
            nin = F if layer == 0 else H
            wx, wh, b = take(nin, G), take(H, G), take(G)
            # libdeepseek stores input-major [in][4H]; torch wants [4H][in]. Gates i, f, g, o.
            getattr(lstm, "weight_ih_l%d" % layer).copy_(wx.t())
            getattr(lstm, "weight_hh_l%d" % layer).copy_(wh.t())
            getattr(lstm, "bias_ih_l%d" % layer).copy_(b)
            getattr(lstm, "bias_hh_l%d" % layer).zero_()
        wq = take(H, H)
        wy, by, wp, bp, wl = take(2 * H, K), take(K), take(2 * H, K), take(K), take(K)
        xt = torch.tensor(x.copy()).unsqueeze(0)
        seq, _ = lstm(xt)
        seq = seq[0]                      # [W][H]
        hl = seq[-1]                      # query: the last state
        q = hl @ wq                       # q_i = sum_j hl_j wq[j][i]
        alpha = torch.softmax(seq @ q / (H ** 0.5), dim=0)
        z = torch.cat([alpha @ seq, hl])
        y = z @ wy + by + xt[0, -1, target]
        pr = torch.sigmoid(z @ wp + bp + wl * xt[0, -1, target])
    out = torch.cat([y, pr]).numpy().astype("<f4")
    open(sys.argv[2], "wb").write(out.tobytes())


main()
