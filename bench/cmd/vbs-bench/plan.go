package main

import (
	"fmt"
	"strings"

	"github.com/vbs-storage/vbs/bench/report"
)

// step is one fio run in the plan.
type step struct {
	run    int
	job    string
	lun    string
	target string
}

// serves reports whether a target can serve a LUN kind: tgt has no store.
func serves(target, lun string) bool {
	return !(target == report.TargetTGT && lun == report.LUNStore)
}

// plan orders the fio runs so that the targets alternate job by job (tgt
// job, vbs job, tgt job, ...): slow drift of the machine (thermal, page
// cache, neighbours) then hits both targets alike. Repeats wrap the whole
// sequence.
func plan(jobs, luns, targets []string, repeat int) []step {
	var steps []step
	for run := 1; run <= repeat; run++ {
		for _, job := range jobs {
			for _, lun := range luns {
				for _, t := range targets {
					if serves(t, lun) {
						steps = append(steps, step{run: run, job: job, lun: lun, target: t})
					}
				}
			}
		}
	}
	return steps
}

// needsFill reports whether a LUN kind keeps data, so that it is written
// once before the jobs and reads then return real data.
func needsFill(lun string) bool { return lun != report.LUNNull }

// fioISCSIURL returns the filename fio's libiscsi engine opens, with every
// colon escaped as fio requires (':' separates file names in fio).
func fioISCSIURL(host string, port int, iqn string, lun int) string {
	u := fmt.Sprintf("iscsi://%s:%d/%s/%d", host, port, iqn, lun)
	return strings.ReplaceAll(u, ":", `\:`)
}
