"""The lazy `scaling` namespace: public names load on first use and are never shadowed."""

import subprocess
import sys

import scaling


def test_importing_a_submodule_keeps_the_function_of_the_same_name():
    import scaling.significance
    import scaling.simulate

    assert callable(scaling.significance) and callable(scaling.simulate)
    from scaling import significance, simulate

    assert significance.__module__ == "scaling.significance"
    assert simulate.__module__ == "scaling.simulate"


def test_every_public_name_resolves():
    assert set(scaling.__all__) == set(scaling._EXPORTS)
    for name in scaling.__all__:
        assert getattr(scaling, name) is not None


def test_contracts_load_without_scipy_or_pandas():
    code = ("import sys, scaling.contracts; "
            "sys.exit(any(m in sys.modules for m in ('scipy', 'pandas')))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
