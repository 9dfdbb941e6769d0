"""``%dataversion``: parse, call :func:`nbops.data.record_version`, show. IPython and light nbops modules only."""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import NbopsError


@magics_class
class DataMagics(Magics):

    @magic_arguments()
    @argument("var", help="The variable holding the data (pandas / polars DataFrame or Series, numpy array), or a "
                          "quoted path of a file or folder.")
    @argument("-n", "--name", help="Dataset name the version is recorded under (default: the variable name, or "
                                   "the file name for a path).")
    @argument("--snapshot", action="store_true", help="Also store the data as parquet in the run "
                                                      "(data/<name>.parquet): a later drift check can load it.")
    @argument("-e", "--experiment", help="Experiment for the recording run when not inside %%track (default: "
                                         "NBOPS_EXPERIMENT, MLFLOW_EXPERIMENT_NAME or 'Default').")
    @line_magic
    def dataversion(self, line: str):
        """Version the data in VAR: show its digest, schema and profile, which runs saw this exact content before,
        and what changed since the previous version recorded under the same name.

        Inside a %%track cell the version is logged on that cell's run; otherwise in a small run of kind
        "dataversion" -- unless the store already holds this exact content under this name.
        """
        import os

        from ..magics import parse

        a = parse(self.dataversion, line)
        ns = self.shell.user_ns
        var = a.var
        if var in ns:
            obj, default = ns[var], var
        elif var.isidentifier() and not os.path.exists(var):
            raise NbopsError(f"%dataversion {var}: no variable named {var!r}; give a DataFrame variable, or a "
                             f"quoted path for a file or folder.", variable=var)
        else:
            obj, default = var, os.path.basename(var.rstrip("/")) or var
        from ..display import show
        from .record import record_version

        show(record_version(obj, a.name or default, snapshot=a.snapshot, experiment=a.experiment))
