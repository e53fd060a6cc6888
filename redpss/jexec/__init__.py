"""JEXEC, the job executor: runs the scripts of application actions from $REDENV_HOME/cmd."""
