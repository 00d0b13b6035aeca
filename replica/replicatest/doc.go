// Package replicatest is the conformance suite of replica.Target: every
// target (Memory, Mirror, the wrappers, and targets to come) runs the same
// subtests through Run, so that they all hold the same tree after the same
// jobs.
//
// A target's test gives a Harness: how to make a fresh target, and how to
// read back what it holds as a map of Entry values keyed by backed-up
// path. Capabilities a target lacks by design (ownership, FIFOs, xattrs,
// ACLs, real holes, hard-link identity) are listed in Harness.Skip; the
// subtests that need them are skipped and the fields they concern are not
// compared. Known bugs are listed in Harness.Bugs so that the suite can
// land before they are fixed.
//
// The inputs imitate what the engine delivers: records in Bacula's order
// (a directory after its contents, deletion records last), content as
// pieces through a Content whose buffer is reused from one piece to the
// next, and ACLs and xattrs that are only complete once the content has
// returned io.EOF.
//
// A minimal use:
//
//	func TestConformance(t *testing.T) {
//		replicatest.Run(t, replicatest.Harness{
//			New:  func(t *testing.T) replica.Target { return replica.NewMemory() },
//			Tree: memoryTree,
//			Skip: []string{replicatest.CapSparseHoles, replicatest.CapHardLinkIdentity},
//		})
//	}
package replicatest
