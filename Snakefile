# speciesgan: animal photo collections -> species-conditional GAN -> FID/IS report.
#
#   snakemake --cores all --configfile configs/demo.yaml all      # built-in demo
#   snakemake --profile slurm all                                # on a SLURM cluster
#
# config.yaml holds the full-scale settings; a --configfile is layered over it.
# The configuration is validated against src/speciesgan/config.schema.yaml before
# any job runs.  Every rule calls the `speciesgan` command; logic lives in the package.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/classifier.smk"
include: "rules/gan.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/report.html",
        f"{RESULTS}/metrics.json",
