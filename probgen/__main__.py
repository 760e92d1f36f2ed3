import sys

from .cli import main

code = main()
if "torch.distributed" in sys.modules:  # a torchrun rank leaves without the interpreter's shutdown
    from .infer.distributed import finish

    finish(code if isinstance(code, int) else 1)
sys.exit(code)
