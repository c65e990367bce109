"""Regenerates example_study.csv: a simulated crowd study of six losses on five images.

True scores (JND): l2 0.0, l1 0.2, ssim -0.3, ms_ssim_l1 0.5, vgg 0.9, mdf 1.3; 20 observers, every
pair once per image, the last 2 observers answer at random (careless). Run:
``python -m scaling.data.make_example``.
"""

from pathlib import Path

from scaling.simulate import simulate_table

TRUE_JOD = {"l2": 0.0, "l1": 0.2, "ssim": -0.3, "ms_ssim_l1": 0.5, "vgg": 0.9, "mdf": 1.3}
IMAGES = ["astronaut", "coffee", "chelsea", "camera", "rocket"]


def main() -> None:
    df = simulate_table(TRUE_JOD, 20, groups=IMAGES, careless=2, seed=2022)
    df.to_csv(Path(__file__).with_name("example_study.csv"), index=False)


if __name__ == "__main__":
    main()
