"""Entry for spark-submit and Databricks: the same arguments as the `partner-hunt` command.

    spark-submit --packages io.delta:delta-spark_2.13:4.0.1 jobs/partner_hunt_job.py run --config conf/cluster.yml
"""

import sys

from partner_hunt.cli import main

if __name__ == "__main__":
    # main raises SystemExit with a non-zero code on failure, so spark-submit and a spark_python_task fail too.
    main(sys.argv[1:])
