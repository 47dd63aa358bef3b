"""Reports and figures (matplotlib); imported only by the CLI and report builders."""
