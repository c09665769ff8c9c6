package compose

import "errors"

// ErrNoCompose is returned when neither docker compose (the plugin) nor
// docker-compose answers.
var ErrNoCompose = errors.New("neither docker compose nor docker-compose answers")

// ErrNoEngine is returned when no Docker Engine answers.
var ErrNoEngine = errors.New("no Docker Engine answers")
