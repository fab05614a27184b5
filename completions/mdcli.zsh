#compdef mdcli

_mdcli_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _MDCLI_COMPLETE=complete_zsh mdcli)
}

compdef _mdcli_completion mdcli
