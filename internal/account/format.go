package account

import "strconv"

// CountCredits is n credits in words for people (Event notes, condition messages): "1 credit",
// "0 credits", "12 credits".
func CountCredits(n int64) string {
	if n == 1 || n == -1 {
		return strconv.FormatInt(n, 10) + " credit"
	}
	return strconv.FormatInt(n, 10) + " credits"
}
