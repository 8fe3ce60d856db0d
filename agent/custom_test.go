package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCustomGrantIsRecordedAsWhatItChanged(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		custom  string
		want    *AuditCustom
	}{
		{name: "user over general", profile: "general", custom: "user: {uid: 1000, gid: 1000}\n",
			want: &AuditCustom{User: AuditIDs{UID: 1000, GID: 1000}}},
		{name: "a capability over restricted", profile: "restricted",
			custom: "capabilities: {bounding: [CAP_SYS_ADMIN], effective: [CAP_SYS_ADMIN], permitted: [CAP_SYS_ADMIN]}\n",
			want:   &AuditCustom{User: AuditIDs{UID: nobody, GID: nobody}, CapabilitiesAdded: []string{"CAP_SYS_ADMIN"}}},
		{name: "fewer capabilities than general", profile: "general",
			custom: "capabilities: {bounding: [CAP_CHOWN, CAP_NET_ADMIN], effective: [CAP_CHOWN]}\n",
			want: &AuditCustom{CapabilitiesAdded: []string{"CAP_NET_ADMIN"},
				CapabilitiesDropped: []string{"CAP_AUDIT_WRITE", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
					"CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID",
					"CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			custom, err := ParseCustom([]byte(tt.custom))
			if err != nil {
				t.Fatal(err)
			}
			profile, err := LookupProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}

			got, err := customGrant(profile, custom)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("grant (-want +got):\n%s", diff)
			}
		})
	}
}
