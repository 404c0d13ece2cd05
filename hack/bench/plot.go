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

	"github.com/gitread/usercredits-operator/internal/bench"
)

const (
	plotW, plotH           = 960, 540
	left, right, top, foot = 70, 20, 30, 50
)

var palette = []color.RGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {148, 103, 189, 255}, {44, 160, 44, 255}, {255, 127, 14, 255}}

// writePlot draws each run's latency by percentile (p1 … p99.9) as a PNG.
func writePlot(path string, runs []bench.Summary) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	percentiles := []float64{}
	for p := 1.0; p <= 99; p++ {
		percentiles = append(percentiles, p)
	}
	percentiles = append(percentiles, 99.5, 99.9)

	var yMax time.Duration
	for _, r := range runs {
		yMax = max(yMax, bench.Percentile(r.Latencies, 99.9))
	}
	yMaxMs := float64(yMax.Microseconds())/1000*1.1 + 0.1
	x := func(p float64) int { return left + int(p/100*float64(plotW-left-right)) }
	y := func(msv float64) int { return plotH - foot - int(msv/yMaxMs*float64(plotH-top-foot)) }

	grey := color.RGBA{200, 200, 200, 255}
	black := color.RGBA{0, 0, 0, 255}
	for i := 0; i <= 5; i++ { // horizontal grid with labels
		v := yMaxMs * float64(i) / 5
		line(img, left, y(v), plotW-right, y(v), grey)
		label(img, 5, y(v)+4, fmt.Sprintf("%.2f ms", v), black)
	}
	for _, p := range []float64{0, 25, 50, 75, 90, 99, 100} {
		line(img, x(p), top, x(p), plotH-foot, grey)
		label(img, x(p)-10, plotH-foot+18, fmt.Sprintf("p%g", p), black)
	}
	line(img, left, plotH-foot, plotW-right, plotH-foot, black)
	line(img, left, top, left, plotH-foot, black)
	label(img, left, 18, "Latency by percentile (make bench)", black)
	label(img, plotW/2-60, plotH-10, "percentile of requests", black)

	for i, r := range runs {
		c := palette[i%len(palette)]
		prevX, prevY := -1, -1
		for _, p := range percentiles {
			px, py := x(p), y(float64(bench.Percentile(r.Latencies, p).Microseconds())/1000)
			if prevX >= 0 {
				thickLine(img, prevX, prevY, px, py, c)
			}
			prevX, prevY = px, py
		}
		ly := top + 20 + 16*i
		thickLine(img, left+15, ly-4, left+40, ly-4, c)
		label(img, left+46, ly, r.Name, black)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
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
