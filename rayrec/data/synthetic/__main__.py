"""``python -m rayrec.data.synthetic --out DIR --reviews N --seed S``: see
:mod:`rayrec.data.synthetic.cli`."""

from rayrec.data.synthetic.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
