# speciesgan: animal photo collections -> species-conditional GAN -> FID/IS report.
#
#   snakemake --cores all --configfile configs/demo.yaml all      # built-in demo
#   snakemake --profile slurm all                                # on a SLURM cluster
#   snakemake --report report.zip all                            # results, browsable
#
# config.yaml holds the full-scale settings; a --configfile is layered over it.
# As a module of another workflow:
#   module speciesgan:  snakefile: "<this repo>/Snakefile"  config: config
#   use rule * from speciesgan
# The configuration is validated against src/speciesgan/config/config.schema.yaml before
# any job runs.  Every rule calls the `speciesgan` command; logic lives in the package.
import signal

from snakemake.utils import min_version

from speciesgan.config import layer_config, read_config_file

min_version("9.0")

# On SLURM, the time-limit warning (--signal=USR1@N, see rules/gan.smk)
# reaches every process of the job step, this Snakemake included.  Its default
# action would kill Snakemake before the training process has written its
# checkpoint; ignored here (and so in the rule's shell), it is handled only by
# training, which installs its own handler, checkpoints and exits 75.
signal.signal(signal.SIGUSR1, signal.SIG_IGN)


# config.yaml beside this file holds the defaults; what the run was given
# (--configfile files, --config, or a `module:`'s `config:`) is layered over it.
# Read through workflow.source_path, not as `configfile:`, because a workflow used
# as a module skips its `configfile:` and reads paths from the caller's directory.
config.update(
    layer_config(read_config_file(workflow.source_path("config.yaml")), config)
)


# Software: every rule runs the `speciesgan` command of the environment Snakemake
# runs in (the project's .venv, scripts/setup.sh).  With `--sdm apptainer` each job
# runs in this image instead, built from containers/speciesgan.def (README.md,
# "Software environment").
container: "containers/speciesgan.sif"


# `snakemake --report report.zip`: the outputs marked report() in rules/*.smk,
# with their captions from report/.
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/classifier.smk"
include: "rules/gan.smk"
include: "rules/evaluate.smk"
include: "rules/ablation.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/report.html",
        f"{RESULTS}/metrics.json",
