package failover_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/openbrc/brc/failover"
	"github.com/openbrc/brc/internal/run"
)

// Decide is the policy alone: three failed checks promote, and a
// promotion is undone only after three passed checks and failback_hold.
func ExampleDecide() {
	cfg := failover.Defaults()
	cfg.HealthcheckCmd = "curl -fsS https://primary.example/health"
	cfg.PromoteCmd = "/etc/brc/promote"
	cfg.DemoteCmd = "/etc/brc/demote"

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := failover.InitialState(failover.RoleStandby, time.Time{})
	step := func(ev failover.Event, wait time.Duration) {
		now = now.Add(wait)
		var acts []failover.Action
		s, acts = failover.Decide(s, ev, now, cfg)
		fmt.Printf("%-14s %-8s F=%d S=%d %v\n", ev.Kind, s.Role, s.Failures, s.Successes, acts)
	}
	fail := failover.Event{Kind: failover.CheckFailed}
	pass := failover.Event{Kind: failover.CheckPassed}
	step(fail, 0)
	step(pass, 30*time.Second) // one pass resets the failures
	step(fail, 30*time.Second)
	step(fail, 30*time.Second)
	step(fail, 30*time.Second)
	step(failover.Event{Kind: failover.HookSucceeded, Hook: failover.HookPromote}, 5*time.Second)
	step(pass, 25*time.Second)
	step(pass, 30*time.Second)
	step(pass, 30*time.Second) // three passes, but failback_hold is 10 minutes
	step(pass, 10*time.Minute)
	step(failover.Event{Kind: failover.HookSucceeded, Hook: failover.HookDemote}, 5*time.Second)
	// Output:
	// check-failed   standby  F=1 S=0 []
	// check-passed   standby  F=0 S=1 []
	// check-failed   standby  F=1 S=0 []
	// check-failed   standby  F=2 S=0 []
	// check-failed   standby  F=3 S=0 [run promote (attempt 1, failures 3)]
	// hook-succeeded promoted F=3 S=0 [role promoted]
	// check-passed   promoted F=0 S=1 []
	// check-passed   promoted F=0 S=2 []
	// check-passed   promoted F=0 S=3 []
	// check-passed   promoted F=0 S=4 [run demote (attempt 1, failures 0)]
	// hook-succeeded standby  F=0 S=4 [role standby]
}

// How the daemon wires a Controller: Role before Run, and a subscriber
// that pauses replication when the role changes. Here the primary is
// down and one failed check is enough.
func Example() {
	dir, _ := os.MkdirTemp("", "brc-failover-example")
	defer os.RemoveAll(dir)

	cfg := failover.Defaults()
	cfg.HealthcheckCmd = "curl -fsS https://primary.example/health"
	cfg.PromoteCmd = "/etc/brc/promote"
	cfg.DemoteCmd = "/etc/brc/demote"
	cfg.HealthcheckFailures = 1

	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		if c.Argv[2] == cfg.HealthcheckCmd {
			return run.Result{ExitCode: 7}, &run.ExitError{Cmd: c.String(), ExitCode: 7}
		}
		return run.Result{}, nil
	}}
	c, err := failover.New(failover.Options{
		Config:    cfg,
		StateDir:  dir,
		Runner:    rec, // production: nil, that is run.Exec{}
		Targets:   []string{"/srv/dr"},
		LastJobID: func() string { return "1234" },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("replicating:", c.Role() == failover.RoleStandby)

	ctx, cancel := context.WithCancel(context.Background())
	c.Subscribe(func(n failover.Notice) {
		if n.Kind == failover.NoticeRoleChanged {
			fmt.Printf("role %s -> %s, replicating: %v\n", n.OldRole, n.Role, n.Role == failover.RoleStandby)
			cancel()
		}
	})
	c.Run(ctx)
	for _, argv := range rec.Argvs() {
		fmt.Println(argv)
	}
	// Output:
	// replicating: true
	// role standby -> promoted, replicating: false
	// /bin/sh -c "curl -fsS https://primary.example/health"
	// /bin/sh -c /etc/brc/promote
}
