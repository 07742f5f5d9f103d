package broker

import "fmt"

// Setting names a value this package's API is given that can be wrong on its own: the CLI
// maps it to its flag.
type Setting int

const (
	// SettingURL is ConnConfig.URL.
	SettingURL Setting = iota + 1
	// SettingListenAddr is StartEmbedded's addr.
	SettingListenAddr
	// SettingDataDir is StartEmbedded's dir.
	SettingDataDir
)

func (s Setting) String() string {
	switch s {
	case SettingURL:
		return "server URL"
	case SettingListenAddr:
		return "listen address"
	case SettingDataDir:
		return "data dir"
	}
	return fmt.Sprintf("setting %d", int(s))
}

// SettingError reports a setting that cannot work. ConnConfig.Validate and Connect return it
// for a URL that no network condition makes dialable, so retrying is pointless; StartEmbedded
// returns it for an address it cannot listen on or a data dir that is not a directory.
type SettingError struct {
	Setting Setting
	// Value is the setting as given, a URL's user information replaced by "xxxxx"; "" when the
	// error is about the whole list (an empty entry in it).
	Value string
	// Err says what is wrong.
	Err error
}

func (e *SettingError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Setting, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Setting, e.Value, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }
