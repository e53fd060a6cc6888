# RED-PSS instance switching (install as /etc/profile.d/redpss.sh).
# After `sudo su - redsys`, typing an instance's name in lower case (e.g. tst1) opens a shell in that instance's
# environment: REDENV, REDENV_HOME, PATH with $REDENV_HOME/bin first, the prompt `TST1 [redsys@host tst1]$` and
# the working directory $REDENV_HOME. CTRL-D (or exit) returns to the previous shell. One command is defined per
# folder found under $REDHOME/env when the login shell starts, for the owner of $REDHOME/env (redsys) only, and
# never one that would hide a command of the same name: the folders are redsys's to name, and a folder named `ls`
# must not turn root's `ls` into a shell whose PATH starts with programs redsys wrote. Only shell builtins run here
# once an instance shell's PATH leads with $REDENV_HOME/bin.
[ -n "${BASH_VERSION:-}" ] || return 0
export REDHOME="${REDHOME:-/app/redsys}"
# redsysctl, redctl, restctl and redinfo in every login shell, whatever the user's own dot files say
case ":$PATH:" in
    *":$REDHOME/bin:"*) ;;
    *) [ -d "$REDHOME/bin" ] && export PATH="$REDHOME/bin:$PATH" ;;
esac

redpss_enter() {
    local name=$1 upper
    upper=${name^^}
    if [ ! -d "$REDHOME/env/$name" ]; then
        echo "no instance $upper: $REDHOME/env/$name is missing" >&2
        return 1
    fi
    (
        export REDENV="$upper" REDENV_HOME="$REDHOME/env/$name" REDPSS_INSTANCE_SHELL=1
        export PATH="$REDENV_HOME/bin:$PATH"
        cd "$REDENV_HOME" || exit 1
        echo "---------------------------------"
        echo "current environment: $REDENV"
        echo "exit with CTRL-D"
        echo "---------------------------------"
        exec bash --noprofile --rcfile "${BASH_SOURCE[0]}" -i
    )
}

if [ -n "${REDPSS_INSTANCE_SHELL:-}" ]; then
    # the rc file of an instance shell: the user's own settings first, then the instance prompt
    unset REDPSS_INSTANCE_SHELL
    # shellcheck disable=SC1090
    [ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"
    PS1="$REDENV [\\u@\\h \\W]\\$ "
fi

if [ -d "$REDHOME/env" ] && [ -O "$REDHOME/env" ]; then
    for _redpss_dir in "$REDHOME"/env/*/; do
        _redpss_name=${_redpss_dir%/}
        _redpss_name=${_redpss_name##*/}
        case $_redpss_name in
            *[!a-z0-9]* | [!a-z]*) continue ;;  # instance folders: a lower-case letter, then letters/digits
        esac
        [ ${#_redpss_name} -le 8 ] || continue
        [ "$(type -t "$_redpss_name")" = function ] || ! type -t "$_redpss_name" >/dev/null || continue
        eval "$_redpss_name() { redpss_enter $_redpss_name; }"
    done
    unset _redpss_dir _redpss_name
fi
