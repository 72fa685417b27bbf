package command

import (
	"github.com/spf13/cobra"
)

func newCompletion(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "print the shell completion script for bash, zsh or fish",
		Long: `Prints the completion script for a shell. Load it for the current shell:

  source <(underlink completion bash)      # bash
  source <(underlink completion zsh)       # zsh
  underlink completion fish | source       # fish

or install it where the shell reads completions, e.g.
  underlink completion bash > /etc/bash_completion.d/underlink`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(s.Out, true)
			case "zsh":
				return root.GenZshCompletion(s.Out)
			default:
				return root.GenFishCompletion(s.Out, true)
			}
		},
	}
}
