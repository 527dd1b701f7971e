package main

import (
	"encoding"
	"flag"
	"fmt"
	"os"
)

// textValue is a setting that reads and writes itself as text.
type textValue interface {
	encoding.TextMarshaler
	encoding.TextUnmarshaler
}

func textSetting(v textValue) func(fs *flag.FlagSet, env, name, help string) error {
	return func(fs *flag.FlagSet, env, name, help string) error {
		if s, ok := os.LookupEnv(env); ok && s != "" {
			if err := v.UnmarshalText([]byte(s)); err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
		}
		fs.TextVar(v, name, v, help)
		return nil
	}
}
