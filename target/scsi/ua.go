package scsi

// uaBit is one unit attention condition. Lower values take precedence when
// more than one is pending (SAM-5 5.14: resets first, then parameter
// changes, then the rest).
type uaBit uint8

const (
	uaPowerOn uaBit = iota
	uaLUReset
	uaITNexusLoss
	uaCommandsCleared
	uaReservationsPreempted
	uaReservationsReleased
	uaRegistrationsPreempted
	uaModeParametersChanged
	uaCapacityChanged
	uaReportedLUNsChanged
	uaCount
)

// uaASC maps each condition to its additional sense code.
func (u uaBit) asc() ASC {
	switch u {
	case uaPowerOn:
		return ASCPowerOnResetOccurred
	case uaLUReset:
		return ASCBusDeviceResetOccurred
	case uaITNexusLoss:
		return ASCITNexusLossOccurred
	case uaCommandsCleared:
		return ASCCommandsCleared
	case uaReservationsPreempted:
		return ASCReservationsPreempted
	case uaReservationsReleased:
		return ASCReservationsReleased
	case uaRegistrationsPreempted:
		return ASCRegistrationsPreempted
	case uaModeParametersChanged:
		return ASCModeParametersChanged
	case uaCapacityChanged:
		return ASCCapacityDataChanged
	case uaReportedLUNsChanged:
		return ASCReportedLUNsDataChanged
	}
	return ASCNoAdditionalSense
}

// itState is the volatile state of one I_T nexus on one LU.
type itState struct {
	ua uint16 // pending unit attentions, bit i = uaBit(i)
}

// raise establishes u. A power-on/reset condition supersedes the others
// (SAM-5: it reports that everything was reset).
func (s *itState) raise(u uaBit) {
	if u <= uaLUReset {
		s.ua &^= 1<<uaCount - 1
	}
	s.ua |= 1 << u
}

// pop removes and returns the highest-precedence pending condition.
func (s *itState) pop() (uaBit, bool) {
	for u := uaBit(0); u < uaCount; u++ {
		if s.ua&(1<<u) != 0 {
			s.ua &^= 1 << u
			return u, true
		}
	}
	return 0, false
}

// clear removes u if pending.
func (s *itState) clear(u uaBit) { s.ua &^= 1 << u }
