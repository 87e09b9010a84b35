// Package readme holds the test that runs the README's walkthroughs, as a
// new user would, against a fresh daemon on the real Docker Engine: the
// shell blocks marked <!-- walkthrough: NAME --> are run step by step and
// every step must succeed.
package readme
