package agent

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// warnings tells the user what the session's profile will not let them
// do, before they run into it.
func (s *session) warnings() []string {
	profile, err := LookupProfile(s.start.Profile)
	if err != nil || profile.ReadsAnyTarget || len(s.start.Custom) > 0 {
		return nil
	}

	uid, err := processUID(s.target.Pid)
	if err != nil || uid == profile.UID {
		return nil
	}
	return []string{fmt.Sprintf("profile %s cannot read %s: the target runs as uid %d and the profile "+
		"has no CAP_SYS_PTRACE; --profile general can", profile.Name, TargetDir, uid)}
}

// processUID is the real uid of a host process.
func processUID(pid int) (uint32, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()

	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "Uid:" {
			uid, err := strconv.ParseUint(fields[1], 10, 32)
			return uint32(uid), err
		}
	}
	return 0, fmt.Errorf("no Uid line in /proc/%d/status", pid)
}
