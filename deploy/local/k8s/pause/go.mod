module pagestream.local/pause

go 1.22
