"""Cost of each loss of the MDF study (paper table 1): median forward and backward time and
parameter memory on one batch, as a Markdown table with ratios to L2 and to VGG16.

    python benchmarks/loss_cost.py                      # 4x3x256x256, CPU, 1 thread, all losses
    python benchmarks/loss_cost.py --batch 2 --size 192 --losses l2,vgg,mdf,mdf_straightforward
    python benchmarks/loss_cost.py --device cuda --autocast bf16   # when a GPU is lent

Same options as ``mdf metrics bench``. VGG/LPIPS/PDL use random trunk weights (cost does not
depend on the values); MDF uses random discriminators shaped like the authors' Ds_JPEG.pth
unless --mdf-weights is given.
"""

from metrics.cli import bench

if __name__ == "__main__":
    bench(prog_name="loss_cost.py")
