package main

import (
	"math"
	"slices"
	"time"
)

// percentile is the nearest-rank percentile p (0..100) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)

	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank-1, 0)]
}

func median(xs []float64) float64 {
	return percentile(xs, 50)
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// walls returns the wall times of samples in milliseconds.
func walls(samples []sample) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = ms(s.wall)
	}
	return out
}

// field collects one step of many timing lines.
func field(ts []timing, name string) []float64 {
	var out []float64
	for _, t := range ts {
		if v, ok := t[name]; ok {
			out = append(out, v)
		}
	}
	return out
}
