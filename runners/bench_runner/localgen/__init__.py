"""Local generation speed (prefill and generation tokens/s, llama-bench style).

* `measure`: the measurements, against a server or with `llama_cpp.Llama` in-process;
* `cli`: `bench-runner local-gen`;
* `suite_kind`: `kind = "local-gen"` in a suite.
"""

from .measure import GenResult, GenSample, measure_in_process, measure_server

__all__ = ["GenResult", "GenSample", "measure_in_process", "measure_server"]
