"""Recording the warnings that change what a result means, and printing them one line each."""

import warnings

import numpy as np
import pytest

from scaling import ScalingWarning, pw_scale
from scaling.caveats import print_warnings, record_warnings


def test_scaling_and_runtime_warnings_are_recorded_once_each_on_one_line():
    with record_warnings() as caught:
        warnings.warn("first\n  line", ScalingWarning, stacklevel=1)
        warnings.warn("first\n  line", ScalingWarning, stacklevel=1)
        warnings.warn("no convergence", RuntimeWarning, stacklevel=1)
        assert caught == []  # filled when the block ends
    assert caught == ["first line", "no convergence"]


def test_other_warnings_go_where_they_would_have_gone():
    with pytest.warns(DeprecationWarning, match="old API"), record_warnings() as caught:
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    assert caught == []


def test_what_was_warned_before_an_error_is_kept():
    with pytest.raises(ValueError, match="bad"), record_warnings() as caught:
        warnings.warn("before the error", ScalingWarning, stacklevel=1)
        raise ValueError("bad")
    assert caught == ["before the error"]


def test_a_disconnected_design_is_recorded_naming_the_conditions():
    D = np.array([[0, 8, 0, 0], [4, 0, 0, 0], [0, 0, 0, 3], [0, 0, 9, 0]], float)
    with record_warnings() as caught:
        pw_scale(D, labels=["l2", "mdf", "vgg", "pdl"])
    assert len(caught) == 1 and "{l2, mdf}; {vgg, pdl}" in caught[0]


def test_print_warnings_writes_one_line_each_on_stderr(capsys):
    print_warnings(["a\nb", "c"], "figure 5")
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == ["warning: figure 5: a b", "warning: figure 5: c"]
