package sender_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/events/sender"
)

func Example() {
	// A sink that is busy once, then takes the event.
	busy := true
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if busy {
			busy = false
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Println("sink got", r.Header.Get("Ce-Type"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer sink.Close()

	s, err := sender.New(sink.URL)
	if err != nil {
		panic(err)
	}
	e := event.New()
	e.SetID("1")
	e.SetType("com.example.hello")
	e.SetSource("/example")
	if err := s.Send(context.Background(), e); err != nil {
		var se *sender.Error
		if errors.As(err, &se) {
			fmt.Println("refused with", se.Status)
		}
	}
	// Output: sink got com.example.hello
}
