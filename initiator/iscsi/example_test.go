package iscsi_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vbs-storage/vbs/initiator/iscsi"
)

// Log in to a target, write and read back one block, and log out.
func ExampleDial() {
	ctx := context.Background()
	s, err := iscsi.Dial(ctx, iscsi.Config{
		Addr:          "127.0.0.1:3260",
		InitiatorName: "iqn.2026-11.io.vbs:host1",
		TargetName:    "iqn.2026-11.io.vbs:vol1",
		CHAP:          &iscsi.Credentials{User: "host1", Secret: "host1-chap-secret"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	capacity, err := s.ReadCapacity16(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	block := make([]byte, capacity.BlockSize)
	copy(block, "hello")
	if err := s.Write16(ctx, 0, 0, capacity.BlockSize, block, true); err != nil {
		log.Fatal(err)
	}
	if err := s.Read16(ctx, 0, 0, capacity.BlockSize, block); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", block[:5])
	if err := s.Logout(ctx); err != nil {
		log.Fatal(err)
	}
}

// Ask a portal which targets it serves.
func ExampleDiscover() {
	targets, err := iscsi.Discover(context.Background(), iscsi.Config{
		Addr:          "127.0.0.1:3260",
		InitiatorName: "iqn.2026-11.io.vbs:host1",
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range targets {
		fmt.Println(t.Name, t.Addresses)
	}
}
