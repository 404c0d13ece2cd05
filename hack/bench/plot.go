package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

const plotW, plotH = 960, 760

var palette = []color.RGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {148, 103, 189, 255}, {44, 160, 44, 255}, {255, 127, 14, 255}}

// writePlot draws latency by percentile (p1 … p99.9): reads in the top panel, writes in
// the bottom one, each on its own scale (they differ a hundredfold).
func writePlot(path string, reads, writes []Summary) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	panel(img, image.Rect(0, 0, plotW, plotH/2), "Reads: GET latency by percentile (make bench)", reads, 0)
	panel(img, image.Rect(0, plotH/2, plotW, plotH), "Writes: latency by percentile (make bench)", writes, len(reads))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}

// panel draws one chart inside r.
func panel(img *image.RGBA, r image.Rectangle, title string, runs []Summary, firstColor int) {
	const left, right, top, foot = 80, 20, 30, 45
	percentiles := []float64{}
	for p := 1.0; p <= 99; p++ {
		percentiles = append(percentiles, p)
	}
	percentiles = append(percentiles, 99.5, 99.9)
	var yMax time.Duration
	for _, run := range runs {
		yMax = max(yMax, Percentile(run.Latencies, 99.9))
	}
	yMaxMs := float64(yMax.Microseconds())/1000*1.1 + 0.01
	x := func(p float64) int { return r.Min.X + left + int(p/100*float64(r.Dx()-left-right)) }
	y := func(msv float64) int { return r.Max.Y - foot - int(msv/yMaxMs*float64(r.Dy()-top-foot)) }

	grey, black := color.RGBA{210, 210, 210, 255}, color.RGBA{0, 0, 0, 255}
	for i := 0; i <= 4; i++ {
		v := yMaxMs * float64(i) / 4
		line(img, x(0), y(v), x(100), y(v), grey)
		label(img, r.Min.X+5, y(v)+4, fmt.Sprintf("%.2f ms", v), black)
	}
	for _, p := range []float64{0, 25, 50, 75, 90, 99} {
		line(img, x(p), r.Min.Y+top, x(p), r.Max.Y-foot, grey)
		label(img, x(p)-10, r.Max.Y-foot+16, fmt.Sprintf("p%g", p), black)
	}
	line(img, x(0), y(0), x(100), y(0), black)
	line(img, x(0), r.Min.Y+top, x(0), y(0), black)
	label(img, r.Min.X+left, r.Min.Y+18, title, black)
	label(img, r.Min.X+r.Dx()/2-70, r.Max.Y-8, "percentile of requests", black)

	for i, run := range runs {
		c := palette[(firstColor+i)%len(palette)]
		prevX, prevY := -1, -1
		for _, p := range percentiles {
			px, py := x(p), y(float64(Percentile(run.Latencies, p).Microseconds())/1000)
			if prevX >= 0 {
				thickLine(img, prevX, prevY, px, py, c)
			}
			prevX, prevY = px, py
		}
		ly := r.Min.Y + top + 20 + 16*i
		thickLine(img, x(0)+15, ly-4, x(0)+40, ly-4, c)
		label(img, x(0)+46, ly, fmt.Sprintf("%s  (p50 %s, p99 %s)", run.Name, ms(run.P50), ms(run.P99)), black)
	}
}

func label(img *image.RGBA, x, y int, text string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(text)
}

func thickLine(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	line(img, x0, y0, x1, y1, c)
	line(img, x0, y0+1, x1, y1+1, c)
}

// line is Bresenham's algorithm.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
