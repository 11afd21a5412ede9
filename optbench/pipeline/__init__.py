"""Pipelines of named steps, read from TOML recipes (DESIGN rule 2).

A recipe names its data, its starting models and its steps. Each step applies one registered
method to an earlier step's (or a model's) output; every step's output is a Variant with its
lineage, so the report can show each step's effect.

- `recipe.py`: the schema, parsing, validation and fingerprint;
- `run.py`: the orchestrator (`run_recipe`) and its stages;
- `at_size.py`: the other-input-size latency pass; `targets.py`: the recipe's [[targets]]
  checked against the saved report; `responsible.py`: the robustness stage.
"""

from optbench.pipeline.recipe import DataConfig, ModelConfig, Recipe, SearchSpec, Step, apply_quick
from optbench.pipeline.run import PipelineResult, load_data, run_recipe

__all__ = ["DataConfig", "ModelConfig", "PipelineResult", "Recipe", "SearchSpec", "Step",
           "apply_quick", "load_data", "run_recipe"]
