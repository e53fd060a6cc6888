"""The command-line tools: redsysctl, redctl, restctl, redinfo, redftp_useradd/redftp_userdel."""
