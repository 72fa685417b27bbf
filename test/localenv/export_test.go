package localenv

// Gone lets the external tests ask what Down waited for.
var Gone = gone
